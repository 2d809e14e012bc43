"""The seed ranges (contracts, "Seeds"): each defined here once, used everywhere.

A seed names one account's episode (its market draws). The ranges keep what trains or tunes
apart from what reports: no training or tuning episode uses a report seed.

============================  ===============  ==========================================
range                         seeds            who draws them
============================  ===============  ==========================================
training                      0..9999          training runs (from the run's seed) and the
                                               baseline searches
reports                       10000..          evaluation, the README's and results' tables
validation                    20000..          validation during training and tuning
unseen-market reports         30000..          ``scripts/evaluate.py --unseen``, results
calibration                   60000..          synthetic accounts that test calibration
twins of training accounts    10**9..2*10**9   the paired reward's twins (drawn at random
                                               in this range, far from every named one)
============================  ===============  ==========================================

Plain integers, no imports: the light modules (serving, configs) use them too.
"""

TRAINING_SEED_END = 10000  # training seeds are 0 .. TRAINING_SEED_END - 1
REPORT_SEED = 10000  # reports and the README's tables: seeds from here
VALIDATION_SEED = 20000  # validation during training and tuning: seeds from here
UNSEEN_SEED = 30000  # unseen-market reports: seeds from here
CALIBRATION_SEED = 60000  # synthetic accounts for testing calibration: seeds from here
TWIN_SEEDS = (10**9, 2 * 10**9)  # training accounts' twins: [low, high), far from every range

