"""Node bookkeeping: who the nodes are, how they stand, and where pieces may go."""
