"""ketnap benchmarks: ``make bench`` (full) and ``make bench-quick``; figures, never assertions."""
