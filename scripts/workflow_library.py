"""Imported first by every rule's script: the deepen/ beside this workflow comes before any installed copy, so a
run uses the code of the workflow it runs (Snakemake puts scripts/ last on the path, which finds this module)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
