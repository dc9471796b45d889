"""The bottom layer: helpers with no domain knowledge, shared by every package.

`errors` (the `UserError` family the command line turns into exit code 2), `files`
(the one atomic-write helper, the one checksum, table reading), `jsonable` (the one
JSON converter), `specfile` (the strict pydantic base every spec file uses), `tables`
(column rules a data contract checks, and the text form of a level) and `resources`
(package data: examples, report templates, reference values). Nothing here imports
another part of `insilico`.
"""
