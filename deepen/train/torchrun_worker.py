"""Entry point of one training process under torchrun: ``python -m deepen.train.torchrun_worker '<json args>'``."""

import json
import sys

from deepen.train.cpt import cpt_stage
from deepen.train.launch import die_with_launcher

if __name__ == "__main__":
    die_with_launcher()
    cpt_stage(**json.loads(sys.argv[1]))
