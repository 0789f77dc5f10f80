-- Runs once, when the container initialises an empty data directory.
CREATE EXTENSION IF NOT EXISTS xmodal;
