"""The README's commands are the ones the project runs: its account of `make run` is the
Makefile's recipe, word for word once the Makefile's variables are filled in."""
import re

from tests.helpers import REPO


def makefile_recipe(target: str):
    text = (REPO / "Makefile").read_text()
    variables = dict(re.findall(r"^([A-Z_]+) [:?]?= *(.*)$", text, re.M))
    recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.M).group(1).replace("\\\n", " ")
    commands = []
    for line in recipe.splitlines():
        line = re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], line)
        commands.append(" ".join(line.replace(".venv/bin/", "").split()))
    return commands


def readme_default_run():
    text = (REPO / "README.md").read_text()
    block = re.search(r"`make run` is\n\n```bash\n(.*?)```", text, re.S).group(1)
    return [" ".join(command.split()) for command in block.replace("\\\n", " ").splitlines()]


def test_the_readme_gives_make_run_as_the_makefile_runs_it():
    assert readme_default_run() == makefile_recipe("run")
