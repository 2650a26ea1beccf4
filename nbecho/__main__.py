"""
C{python -m nbecho}: the interactive client, as C{nbecho-client}.

Where the console script is not on C{PATH} (a virtual environment that was
not activated, a zipapp), the interpreter that has nbecho can still run it.
"""

from nbecho.client.main import main

main()
