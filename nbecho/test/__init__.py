"""
Unit tests for nbecho, run by C{trial nbecho} (and by pytest).
"""
