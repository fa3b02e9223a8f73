"""Shell completion: the ``kubectl_complete-oncall`` helper kubectl 1.26+ calls, and scripts for the shells.

kubectl completes ``kubectl oncall <TAB>`` by running ``kubectl_complete-oncall`` (found on PATH)
with the words typed after ``oncall``, the last one being the word under completion (maybe
empty), and reading cobra's ``__complete`` answer: one candidate per line (``value<TAB>help``),
then ``:<directive>`` (4: no file completion; 0: the shell's default, i.e. files). So a user who
sourced ``kubectl completion bash|zsh`` gets verbs, flags, namespaces, contexts, incident and
schedule names with nothing more. ``kubectl oncall completion bash|zsh`` prints a script that
does the same for the ``kubectl-oncall`` executable typed directly.
"""

import argparse
import sys
from collections.abc import Iterable

from oncall_operator.kubectl_plugin.args import OUTPUTS, parser

DEFAULT = 0
NO_FILES = 4
INCIDENTS, SCHEDULES = "incidents", "oncallschedules"
"""The plurals completed (named here: importing the API models would slow every TAB down)."""
INCIDENT_VERBS = ("ack", "resolve", "timeline", "report", "approve", "check")
SCHEDULE_VERBS = ("who", "calendar", "override")


def _takes_value(top: argparse.ArgumentParser) -> set[str]:
    """Every option string that takes a value, on the top parser or any verb."""
    parsers = [top, *_verbs(top).values()]
    return {o for p in parsers for a in p._actions for o in a.option_strings if a.nargs != 0}


def _verbs(top: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _helps(top: argparse.ArgumentParser) -> dict[str, str]:
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return {c.dest: c.help or "" for c in sub._choices_actions}


def _flags(p: argparse.ArgumentParser) -> list[str]:
    return [f"{o}\t{a.help or ''}" for a in p._actions for o in a.option_strings if o.startswith("--")]


def _names(words: list[str], plural: str, values: set[str]) -> list[str]:
    """Names of ``plural`` in the namespace the words select, read with the user's kubeconfig."""
    flags = dict(zip(words, [*words[1:], ""], strict=True))

    def flag(*names: str) -> str | None:
        return next((flags[n] for n in names if n in flags and n in values), None)

    from oncall_operator.api import GROUP, VERSION
    from oncall_operator.kubectl_plugin.session import connect

    try:
        s = connect(flag("--kubeconfig"), flag("--context"), flag("-n", "--namespace"), False)
        raw = s.kube.custom.list_namespaced_custom_object(GROUP, VERSION, s.namespace, plural, _request_timeout=5)
    except Exception:  # completion never fails loudly: no candidates is the answer
        return []
    return [item["metadata"]["name"] for item in raw["items"]]


def _contexts(words: list[str]) -> list[str]:
    import kubernetes

    path = words[words.index("--kubeconfig") + 1] if "--kubeconfig" in words[:-1] else None
    try:
        contexts, _active = kubernetes.config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except Exception:
        return []
    return [c["name"] for c in contexts]


def _namespaces(words: list[str]) -> list[str]:
    from oncall_operator.kubectl_plugin.session import connect

    try:
        s = connect(None, words[words.index("--context") + 1] if "--context" in words[:-1] else None, None, False)
        return [n.metadata.name for n in s.kube.core.list_namespace(_request_timeout=5).items]
    except Exception:
        return []


def candidates(top: argparse.ArgumentParser, words: list[str], current: str) -> tuple[list[str], int]:
    """What completes ``current`` after ``words`` (the words typed after ``oncall``), and the directive."""
    values = _takes_value(top)
    verbs = _verbs(top)
    previous = words[-1] if words else ""
    if previous in ("-n", "--namespace"):
        return _namespaces(words), NO_FILES
    if previous == "--context":
        return _contexts(words), NO_FILES
    if previous in ("-o", "--output"):
        return list(OUTPUTS), NO_FILES
    if previous in ("--kubeconfig", "-f", "--filename"):
        return [], DEFAULT
    if previous in values:
        return [], NO_FILES
    positionals = [w for i, w in enumerate(words) if not w.startswith("-") and (i == 0 or words[i - 1] not in values)]
    verb = positionals[0] if positionals and positionals[0] in verbs else None
    if current.startswith("-"):
        return _flags(verbs[verb] if verb else top), NO_FILES
    if verb is None:
        return [f"{name}\t{text}" for name, text in _helps(top).items()], NO_FILES
    if len(positionals) > 1 and verb != "diff":
        return [], NO_FILES
    if verb in INCIDENT_VERBS:
        return _names(words, INCIDENTS, values), NO_FILES
    if verb in SCHEDULE_VERBS:
        return _names(words, SCHEDULES, values), NO_FILES
    if verb == "completion":
        return ["bash", "zsh"], NO_FILES
    return [], DEFAULT if verb == "diff" else NO_FILES


def answer(top: argparse.ArgumentParser, argv: list[str]) -> str:
    """cobra's ``__complete`` answer for ``argv`` (the words, the last one under completion)."""
    words, current = (argv[:-1], argv[-1]) if argv else ([], "")
    found, directive = candidates(top, words, current)
    chosen = [c for c in found if c.startswith(current)]
    return "".join(f"{c}\n" for c in chosen) + f":{directive}\n"


def script(shell: str) -> str:
    """A completion script for the ``kubectl-oncall`` executable itself (kubectl needs none)."""
    body = BASH.strip() + "\n"
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + body
    return body


BASH = r"""
# kubectl oncall completion: `kubectl oncall <TAB>` already completes through kubectl's own
# completion (kubectl 1.26+ runs kubectl_complete-oncall); this adds `kubectl-oncall <TAB>`.
_kubectl_oncall() {
    local out directive line
    local -a found=()
    out=$(kubectl_complete-oncall "${COMP_WORDS[@]:1:COMP_CWORD-1}" "${COMP_WORDS[COMP_CWORD]}" 2>/dev/null) || return
    directive=${out##*:}
    while IFS= read -r line; do
        [[ -z $line || $line == :* ]] || found+=("${line%%$'\t'*}")
    done <<< "$out"
    COMPREPLY=("${found[@]}")
    if (( ${#found[@]} == 0 && (directive & 4) == 0 )); then
        compopt -o default 2>/dev/null
    fi
}
complete -F _kubectl_oncall kubectl-oncall
"""


def main(argv: Iterable[str] | None = None) -> int:
    """The ``kubectl_complete-oncall`` executable."""
    sys.stdout.write(answer(parser(), list(sys.argv[1:] if argv is None else argv)))
    return 0
