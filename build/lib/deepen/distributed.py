"""Entry point of one training process under torchrun: ``python -m deepen.distributed '<json args>'``."""

import json
import sys

from .launch import die_with_launcher
from .pipeline import cpt_stage

if __name__ == "__main__":
    die_with_launcher()
    cpt_stage(**json.loads(sys.argv[1]))
