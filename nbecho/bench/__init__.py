"""
The benchmark: C{python -m nbecho.bench} (see L{nbecho.bench.run}).
"""
