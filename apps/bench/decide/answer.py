"""report.md's first screen: the pick and why, what does not differ, the decision table, and
(given an earlier run) the stability of each verdict. Text generated from `decision`."""

from __future__ import annotations

from apps.bench.decide.decision import (
    BEST,
    BY_KEY,
    CRITERIA,
    FAIL,
    SAME,
    UNDECIDED,
    queue_names,
)
from apps.bench.decide.rule import MIN_EFFECT_REL, MIN_REPEATS, SPREAD_K, Samples
from apps.bench.report.markdown import table

RULE = (
    "The rule: a figure is the median of its repeats; two backends differ on a criterion "
    f"when the difference of their medians is more than {SPREAD_K:g} x the larger median "
    "absolute deviation of their repeats *and* at least "
    f"{MIN_EFFECT_REL:.0%} of the best (or the criterion's absolute floor, or the noise "
    f"floor); each needs >= {MIN_REPEATS} repeats, interleaved across backends. "
    "Defects (lost, stored twice, stuck) must be zero; a count of jobs executed twice "
    "differs when it is at least 2 apart."
)


def _fmt(value: float, unit: str) -> str:
    digits = 0 if unit == "jobs" or abs(value) >= 100 else (2 if abs(value) < 10 else 1)
    return f"{value:,.{digits}f} {unit}"


def show(value: Samples | None, unit: str) -> str:
    """'0.93 (0.90-0.95) x3' for repeats, '0.93' for one value, '-' when missing."""
    if value is None:
        return "-"
    text = _fmt(value.median, unit).removesuffix(f" {unit}")
    if value.runs > 1:
        lo, hi = (_fmt(x, unit).removesuffix(f" {unit}") for x in (value.lo, value.hi))
        text += f" ({lo}-{hi}) x{value.runs}"
    return text


def _best(decision: dict, key: str) -> tuple[str, Samples] | None:
    for name, verdict in decision["verdicts"][key].items():
        if verdict == BEST:
            return name, decision["values"][name][key]
    return None


def _reason(decision: dict, name: str) -> str:
    missing = decision["pick"].get("unmeasured", {}).get(name)
    if missing:
        return "not measured on " + ", ".join(BY_KEY[k].label for k in missing)
    wins = [BY_KEY[k].label for k in decision["pick"]["decided"]
            if decision["verdicts"][k].get(name) == BEST]  # fmt: skip
    decided = len(decision["pick"]["decided"])
    lost = decision["pick"]["losses"][name]
    head = f"best on {', '.join(wins)}; " if wins else ""
    if not lost:
        return f"{head}never worse than the best on any of the {decided} decided criteria"
    return f"{head}worse on {', '.join(_loss(decision, name, k) for k in lost)}"


def _loss(decision: dict, name: str, key: str) -> str:
    c = BY_KEY[key]
    mine = decision["values"][name][key]
    if decision["verdicts"][key][name] == FAIL:
        return f"{c.label} ({_fmt(mine.median, c.unit)}, must be 0)"
    best = _best(decision, key)
    against = f" vs {_fmt(best[1].median, c.unit)} for {best[0]}" if best else ""
    return f"{c.label} ({_fmt(mine.median, c.unit)}{against})"


def noise_line(decision: dict) -> str:
    noise = decision["noise"]
    if noise["rel"] is None:
        return "Noise floor: not measured (needs OCR cells at W = 1 on two or more queues)."
    return (
        f"Noise floor: where the queue cannot matter (OCR at W = 1), {noise['backends']} queue "
        f"backends spread {noise['rel']:.0%} (max - min over median); an OCR difference "
        "smaller than that is not counted."
    )


def _undiffering(decision: dict) -> list[str]:
    out = []
    for c in CRITERIA:
        verdicts = decision["verdicts"][c.key]
        names = [n for n in queue_names(decision) if n in verdicts]
        if len(names) > 1 and all(verdicts[n] in (BEST, SAME) for n in names):
            out.append(c.label)
    return out


def first_screen(decision: dict) -> list[str]:
    """The pick(s) with one reason each, the others, what does not differ, the rule."""
    pick = decision["pick"]
    lines = ["## The answer", ""]
    if not pick["names"]:
        lines += ["**The data cannot decide**: no criterion separated the queue backends "
                  "in this run (or too few repeats).", ""]  # fmt: skip
    else:
        lines += [f"**Pick: {', '.join(pick['names'])}** (CPU-heavy jobs on this machine; "
                  "any of them: choose by what you already operate).", ""]  # fmt: skip
        lines += [f"- **{n}**: {_reason(decision, n)}." for n in pick["names"]]
        others = [n for n in queue_names(decision) if n not in pick["names"]]
        lines += [f"- not {n}: {_reason(decision, n)}." for n in others]
        lines.append("")
    same = _undiffering(decision)
    if same:
        lines += [f"**What does not differ** between the queues: {', '.join(same)}.", ""]
    queues = queue_names(decision)
    undecided = [
        c.label
        for c in CRITERIA
        if any(decision["verdicts"][c.key].get(n) == UNDECIDED for n in queues)
    ]
    if undecided:
        lines += [f"**Cannot decide** (fewer than {MIN_REPEATS} repeats): "
                  f"{', '.join(undecided)}.", ""]  # fmt: skip
    return lines + [noise_line(decision), "", RULE, ""]


def decision_table(decision: dict) -> list[str]:
    """One row per backend: median (min-max) xN; bold = best, '=' = no difference,
    '?' = too few repeats, FAIL = a defect; unmarked = worse."""
    names = list(decision["values"])
    criteria = [c for c in CRITERIA if decision["verdicts"][c.key]]
    rows = []
    for name in names:
        cells = []
        for c in criteria:
            text = show(decision["values"][name].get(c.key), c.unit)
            verdict = decision["verdicts"][c.key].get(name)
            mark = {BEST: "**", SAME: " =", UNDECIDED: " ?", FAIL: " FAIL"}.get(verdict, "")
            cells.append(f"**{text}**" if mark == "**" else text + mark)
        rows.append([name, *cells])
    header = ["backend", *[f"{c.label} ({c.unit})" for c in criteria]]
    legend = ("Median (min-max) xN repeats. Bold: best; `=`: no difference from the best; "
              "`?`: too few repeats to tell; FAIL: a defect; unmarked: worse.")  # fmt: skip
    return ["### The decision table", "", legend, ""] + table(
        header, rows, "l" + "r" * len(criteria)
    )


def stability(previous: dict, decision: dict, label: str) -> list[str]:
    """Each criterion whose verdict changed between an earlier run and this one."""
    changed = []
    for c in CRITERIA:
        before, now = previous["verdicts"].get(c.key, {}), decision["verdicts"][c.key]
        for name in sorted(set(before) & set(now)):
            if before[name] != now[name] and UNDECIDED not in (before[name], now[name]):
                changed.append([c.label, name, before[name], now[name]])
    same_pick = previous["pick"]["names"] == decision["pick"]["names"]
    verdict = (
        f"The pick is the same as in {label} ({', '.join(decision['pick']['names']) or 'none'})."
        if same_pick
        else f"The pick changed ({', '.join(previous['pick']['names']) or 'none'} in {label}, "
        f"{', '.join(decision['pick']['names']) or 'none'} now): the data cannot decide "
        "between them."
    )
    head = ["## Stability against an earlier run", "", verdict, ""]
    if not changed:
        return head + ["No verdict that both runs could decide changed."]
    return head + table(["criterion", "backend", label, "this run"], changed, "llll")
