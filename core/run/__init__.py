"""Running the job: training and its checkpoints, the evaluation protocol, inference,
model files and the plots that show them. Uses the engine and the music side."""
