"""Emulators of Encoura (`sandbox.encoura`) and Canvas (`sandbox.canvas`) over real HTTP.

Imported only by `--sandbox` runs and tests, and importing only `common`: an emulator that shared the
clients' parsing could not catch the clients' bugs."""
