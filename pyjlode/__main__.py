"""``python -m pyjlode``: the same program as the ``pyjlode`` script (also what torchrun launches)."""
from pyjlode.cli import main

if __name__ == "__main__":
    main()
