"""The names of a run folder's files (docs/training.md, "The run folder").

The training engine writes them; ``idresnet eval``, ``export``, ``predict``, ``runs``,
``reproduce`` and ``create_model(pretrained=RUN)`` read them.
"""

CONFIG = "config.yaml"  # the resolved config and run_info
METRICS = "metrics.csv"  # a row per log_interval and per evaluation
STATUS = "status.json"  # running | finished | failed | diverged | interrupted
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT = f"{CHECKPOINT_DIR}/last.ckpt"  # the latest checkpoint
PREVIOUS_CHECKPOINT = f"{CHECKPOINT_DIR}/previous.ckpt"  # the one before it
CHECKPOINTS = (CHECKPOINT, PREVIOUS_CHECKPOINT)  # newest first
WEIGHTS = "weights.safetensors"  # the final weights, with their record
VAL_SPLIT = "val_split.json"  # the held-out validation images (val_split), checked on resume
LOCK = ".lock"  # held by the one process writing the run
TENSORBOARD = "tensorboard"  # logger: tensorboard, its event files
TRACKERS = "trackers.json"  # logger: the trackers' run ids (wandb, mlflow), what a resume continues
MLFLOW_STORE = "mlflow.db"  # logger: mlflow, its default SQLite store (no MLFLOW_TRACKING_URI)
MLFLOW_ARTIFACTS = "mlartifacts"  # ... and that store's (unused) artifact folder
OWN_FILES = (CONFIG, METRICS, STATUS, *CHECKPOINTS, WEIGHTS)  # what makes a folder a run's
