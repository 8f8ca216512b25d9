"""The command line's machinery: ``python -m executors run`` (:mod:`~executors._cli.run`).

``executors/__main__.py`` parses the sub-command and imports the module that runs it.
"""
