"""``ketnap generate``: a synthetic, realistic, deterministic national feed (pure: no I/O).

    for item in generate(GeneratorConfig(now=..., seed=1, scale=0.01)):
        item.event     # a CloudEvents dict, ready for orjson.dumps
        item.sender    # the 2025 province whose token sends it, or "VN"
        item.expect    # "accepted", "duplicate" or the intake's rejection code
        item.counts    # part of the final tallies?

See docs/demo.md for the figures it is calibrated on and the mess it contains.
"""

from ketnap.generate.config import GeneratorConfig, parse_now, parse_years
from ketnap.generate.feed import candidate_feed, generate, reference_feed
from ketnap.generate.plan import Plan, make_plan
from ketnap.generate.wire import ACCEPTED, DUPLICATE, NATIONAL, Emitted

__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "NATIONAL",
    "Emitted",
    "GeneratorConfig",
    "Plan",
    "candidate_feed",
    "generate",
    "make_plan",
    "parse_now",
    "parse_years",
    "reference_feed",
]
