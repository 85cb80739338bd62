import sys

try:
    from bench.cli import main

    code = main()
except KeyboardInterrupt:  # Ctrl-C before a run folder exists (while starting up, loading)
    sys.stderr.write("\ninterrupted\n")
    code = 130
sys.exit(code)
