import os

# Screens render offscreen in tests; a real window is never needed.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
