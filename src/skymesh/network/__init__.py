"""``skymesh up``: a whole local network of real processes on one machine."""
