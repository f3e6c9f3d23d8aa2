import sys

from benchmarks.harness import main

main(sys.argv[1:])
