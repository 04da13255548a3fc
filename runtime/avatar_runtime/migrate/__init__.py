"""Migration from other avatar stacks: `avatar-runtime config import` (an OpenAvatarChat YAML → our config).

Layout: `source` reads and checks the foreign file, `openavatarchat` + `handlers` are the pure conversion into a
`Conversion` (built by `result.Builder`), `render` turns it into commented YAML and a report, and `command` is
the CLI glue (files, validation with our own `load_config`, exit codes).
"""
