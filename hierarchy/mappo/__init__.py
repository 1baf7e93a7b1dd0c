"""MAPPO training of hierarchy's edge and cloud actors (torch; the only place torch is used).

Decentralised actors (one shared by every edge site, whose observation carries the site's
identity; one for the cloud level) over masked categorical actions, a centralised critic on
the simulator's global state with value normalisation, GAE, the clipped objective, an entropy
bonus, gradient clipping, orthogonal initialisation and learning-rate annealing (Yu et al.
2021). `TrainConfig(algo="ippo")` gives the IPPO ablation (critics on each agent's own
observation). The result is exported for NumPy-only execution (hierarchy.policies.learned).
"""

from hierarchy.mappo.config import TrainConfig
from hierarchy.mappo.trainer import Trainer, TrainingError

__all__ = ["TrainConfig", "Trainer", "TrainingError"]
