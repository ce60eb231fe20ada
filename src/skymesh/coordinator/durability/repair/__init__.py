"""Repair: find segments that lost pieces (checker), rebuild and re-place them (worker).

Also graceful exit (drain): pieces on a leaving node count as misplaced, so repair
moves them while the node still serves them.
"""
