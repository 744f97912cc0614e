"""Build-time tools of the repository (code generation); not part of the installed package."""
