# Starts the hub. Interrupt with Ctrl-C to reach the REPL.
from hub import app

app.run()
