# boot.py runs on every reset, including each mpremote connection (which gives up after 10 s):
# keep it tiny. No WiFi here; the node starts from main.py.
import gc

gc.collect()
