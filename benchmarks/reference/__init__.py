"""Straightforward implementations of the classic algorithms, the baselines cnn-probe is timed against.

Written for this project from the published descriptions of the algorithms
(no code copied); each keeps the textbook structure on purpose.
"""
