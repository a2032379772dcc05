"""Print one of the two set-up commands from README.md: `demo` or `test`.

README.md gives them in its first code block, each after a comment line naming it
(`# demo: ...` and `# test: ...`). CI and the tests read them from there, so the README
can never drift from what is actually run.
"""
import re, sys
from pathlib import Path

def readme_commands(readme=Path(__file__).parent.parent/'README.md'):
    "Map `demo`/`test` to the command that follows its comment in README's first code block."
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme.read_text(), re.S).group(1)
    lines = block.strip().splitlines()
    return {m.group(1): lines[i+1].strip() for i,l in enumerate(lines) if (m := re.match(r'#\s*(demo|test)\b', l))}

if __name__ == '__main__': print(readme_commands()[sys.argv[1]])
