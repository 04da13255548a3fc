"""What the packaging tests read from Dockerfiles and the build context, as plain data (no Docker engine here).

- `parse_dockerfile`: stages with their instructions (dockerfile-parse does the line joining and comments), global
  ARG defaults resolved in FROM lines.
- `DockerIgnore`: Docker's .dockerignore rules (moby/patternmatcher): Go `filepath.Match` patterns plus `**`, a
  pattern that matches a parent directory matches everything below it, `!` re-includes, the last match wins.
- `emulate_stage`: lays out a build stage in a temporary directory the way the builder would (COPY from the
  context, after .dockerignore), so its RUN lines can run here for real.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Instruction:
    name: str  # upper case: FROM, RUN, COPY ...
    value: str
    line: int  # 1-based


@dataclass
class Stage:
    index: int
    name: str | None
    base: str  # image reference with the global ARG defaults substituted
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]

    def last(self, name: str) -> Instruction | None:
        found = self.all(name)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV of this stage (KEY=VALUE pairs; `$PATH`-style references left as written)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.value):
                key, _, value = pair.partition("=")
                values[key] = value
        return values

    def workdir(self) -> str:
        last = self.last("WORKDIR")
        return last.value if last else "/"


def substitute(text: str, args: dict[str, str]) -> str:
    """`${NAME}` and `$NAME` from `args`, as Docker substitutes build arguments (unknown names stay as they are)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def parse_dockerfile(path: Path) -> list[Stage]:
    parser = DockerfileParser(fileobj=io.BytesIO(path.read_bytes()))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in parser.structure:
        instruction = Instruction(item["instruction"], item["value"], item["startline"] + 1)
        if instruction.name == "COMMENT":
            continue
        if instruction.name == "ARG" and not stages:
            name, _, default = instruction.value.partition("=")
            global_args[name] = default.strip('"')
        elif instruction.name == "FROM":
            words = instruction.value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(len(stages), name, substitute(words[0], global_args)))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def exec_form(value: str) -> list[str]:
    """An exec-form (JSON array) ENTRYPOINT/CMD; ValueError for the shell form."""
    parsed = json.loads(value)
    if not (isinstance(parsed, list) and all(isinstance(part, str) for part in parsed)):
        raise ValueError(f"not an exec-form array: {value}")
    return parsed


def flags_and_rest(value: str) -> tuple[dict[str, str], list[str]]:
    """`--from=python --chown=1:1 a b` → ({'from': 'python', 'chown': '1:1'}, ['a', 'b'])."""
    words = shlex.split(value)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, flag_value = words.pop(0)[2:].partition("=")
        flags[key] = flag_value
    return flags, words


def shell_commands(run: Instruction) -> list[list[str]]:
    """The `&&`-separated commands of a shell-form RUN (its --mount/--network flags dropped), each as argv."""
    _, words = flags_and_rest(run.value)
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    return [command for command in commands if command]


def copy_parts(copy: Instruction) -> tuple[str | None, list[str], str]:
    """(--from stage or None, sources, destination) of a COPY."""
    flags, words = flags_and_rest(copy.value)
    return flags.get("from"), words[:-1], words[-1]


# -- .dockerignore -------------------------------------------------------------------------------------------------
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


class DockerIgnore:
    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, str, re.Pattern[str]]] = []  # (re-include?, pattern, its regex)
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if include else line).lstrip("/")
            self.rules.append((include, pattern, _pattern_regex(pattern)))

    @classmethod
    def of_repo(cls) -> DockerIgnore:
        return cls((REPO / ".dockerignore").read_text(encoding="utf-8"))

    def excluded(self, relative: str) -> bool:
        """Whether the context path (relative, '/'-separated) is left out of the build context."""
        parts = relative.strip("/").split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]  # the path and each parent
        excluded = False
        for include, _, regex in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = not include
        return excluded

    def context_files(self, source: str) -> list[str]:
        """The files a COPY source (file or directory, relative to the repo) brings into the build context."""
        root = REPO / source
        if root.is_file():
            return [] if self.excluded(source) else [source.rstrip("/")]
        found = []
        for directory, dirs, files in os.walk(root):
            rel_dir = Path(directory).relative_to(REPO).as_posix()
            dirs[:] = [d for d in dirs if not self.excluded(f"{rel_dir}/{d}") or self._may_reinclude(f"{rel_dir}/{d}")]
            found += [f"{rel_dir}/{name}" for name in files if not self.excluded(f"{rel_dir}/{name}")]
        return sorted(found)

    def _may_reinclude(self, directory: str) -> bool:
        # An excluded directory is still walked when a later `!` rule could re-include something below it.
        return any(include and pattern.startswith(directory + "/") for include, pattern, _ in self.rules)


def emulate_stage(stage: Stage, root: Path, ignore: DockerIgnore) -> Path:
    """Copy the stage's context COPY sources under `root` + WORKDIR; return that working directory.

    Only COPYs from the build context (not --from another stage) are done: the caller provides those outputs.
    """
    workdir = root / stage.workdir().lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    for copy in stage.all("COPY"):
        from_stage, sources, destination = copy_parts(copy)
        if from_stage is not None:
            continue
        target = workdir / destination
        for source in sources:
            files = ignore.context_files(source)
            assert files, f"COPY {source} (line {copy.line}) brings nothing into the build context"
            for file in files:
                # `COPY dir/ dest/` copies the directory's contents; `COPY a b dir/` copies the files into dir/.
                relative = Path(file).relative_to(source.rstrip("/")) if (REPO / source).is_dir() else Path(file).name
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / file, target / relative)
    return workdir
