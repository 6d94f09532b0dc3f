"""The readers of the languages a step may run: shell (tree-sitter-bash), Python (``ast``),
Makefiles, npm scripts, and the small programs handed to awk, sed, perl, ruby and node.

Each turns source into what the rules check: the commands it runs, or "cannot read", which is
never "fine"."""
