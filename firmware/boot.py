# Runs first at every reset, before main.py. Kept tiny: the hub's code
# lives in the compiled hub package so that a bad edit here cannot brick
# the board.
import gc

gc.collect()
