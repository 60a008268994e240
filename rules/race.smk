# The method race (deepen/train/race.py): each rung of each candidate still racing, the decision after each rung
# (a checkpoint: which candidates run the next rung is known only from it), the winner's cooldown and the bracket.


def race_survivors(rung: int) -> list[str]:
    """The candidates that train rung ``rung``: all at the first, then those the decision before kept."""
    if rung == 1:
        return JOBS.race_candidates
    with open(checkpoints.race_decide.get(rung=rung - 1).output.decision) as f:
        return json.load(f)["survivors"]


def race_decisions(wildcards=None) -> list[str]:
    """Every decision up to the one that ends the race."""
    paths = []
    for rung in range(1, len(config["race"]["rungs"]) + 1):
        paths.append(checkpoints.race_decide.get(rung=rung).output.decision)
        with open(paths[-1]) as f:
            if json.load(f)["over"]:
                break
    return paths


def race_winner(wildcards) -> dict[str, str]:
    """The winner's expanded model and its checkpoint at the end of its last rung."""
    decisions = race_decisions()
    with open(decisions[-1]) as f:
        winner = json.load(f)["winner"]
    return {"model": JOBS.cpt_model(winner.split("/")[0], config["race"]["seed"]),
            "state": JOBS.race_path("state", winner, len(decisions))}


rule race_rung:
    input:
        unpack(lambda wildcards: JOBS.race_rung_inputs(wildcards.method, wildcards.freeze, wildcards.rung)),
        **TOKEN_FILES,
    output: **outputs("race_rung")
    log: "logs/race/{method}/{freeze}/rung{rung}.log"
    params: **JOBS.rule_params("race_rung")
    threads: config["resources"]["train_threads"]
    resources: **JOBS.resources("race_rung")
    conda: CONDA_ENV
    script: "../scripts/race_rung.py"


checkpoint race_decide:
    input: lambda wildcards: [JOBS.race_path("info", c, int(wildcards.rung)) for c in race_survivors(int(wildcards.rung))]
    output: **outputs("race_decide")
    log: "logs/race/decide{rung}.log"
    params: **JOBS.rule_params("race_decide")
    resources: **JOBS.resources("race_decide")
    conda: CONDA_ENV
    script: "../scripts/race_decide.py"


rule race_cooldown:
    input:
        unpack(race_winner),
        decisions=race_decisions,
        **TOKEN_FILES,
    output: **outputs("race_cooldown")
    log: "logs/race/cooldown.log"
    params: **JOBS.rule_params("race_cooldown")
    threads: config["resources"]["train_threads"]
    resources: **JOBS.resources("race_cooldown")
    conda: CONDA_ENV
    script: "../scripts/race_cooldown.py"


rule race_bracket:
    input:
        decisions=race_decisions,
        cooldown=OUTPUTS["race_cooldown"]["metrics"],
    output: **outputs("race_bracket")
    log: "logs/race/bracket.log"
    params: **JOBS.rule_params("race_bracket")
    resources: **JOBS.resources("race_bracket")
    conda: CONDA_ENV
    script: "../scripts/race_bracket.py"
