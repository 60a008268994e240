"""The report: the rows and their statistics (rows.py), the loss curves (curves.py), summary.md's generated text
(summary.py), the step-0 table (step0.py), the papers' claims checked (claims.py), and optional panels behind one
interface (panels.py; one module per panel: panel_*.py), put together by build.py. The growth and SFT branches'
own reports are growth_section.py and sft_section.py. Nothing here imports torch."""

# The panels register themselves on import, in the order summary.md shows them.
from deepen.report import panel_base  # noqa: F401, I001
from deepen.report import panel_lesa  # noqa: F401
from deepen.report import panel_seams  # noqa: F401
from deepen.report import panel_placement  # noqa: F401
from deepen.report import panel_benchmarks  # noqa: F401
from deepen.report import panel_samples  # noqa: F401
from deepen.report import panel_branches  # noqa: F401
from deepen.report import panel_race  # noqa: F401
from deepen.report.panels import PANELS, RunFacts, panel, panel_inputs, panel_outputs, panel_params  # noqa: F401
