"""Commands that copier.yml's _migrations run when a service is updated.

    python extensions/migrations.py rename-answer OLD NEW [ANSWERS_FILE]

Copier runs "before" migrations in the service's directory, after it has
re-rendered the old version and before it loads the answers for the new one:
renaming the key there makes the old answer the new question's answer,
without prompting. A migration entry looks like:

    - version: "2.0.0"
      when: "{{ _stage == 'before' }}"
      command:
        - "{{ _copier_python }}"
        - "{{ _copier_conf.src_path }}/extensions/migrations.py"
        - rename-answer
        - old_key
        - new_key
"""

import sys
from pathlib import Path

import yaml


def rename_answer(old, new, answers_file=".copier-answers.yml"):
    path = Path(answers_file)
    answers = yaml.safe_load(path.read_text()) or {}
    if old not in answers:
        return
    # Keep the answers' order, with the new key where the old one was.
    renamed = {(new if key == old else key): value for key, value in answers.items()}
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    path.write_text(header + yaml.safe_dump(renamed, sort_keys=False, allow_unicode=True))


COMMANDS = {"rename-answer": rename_answer}


def main(argv):
    if len(argv) < 2 or argv[0] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
