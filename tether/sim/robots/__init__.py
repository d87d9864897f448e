"""Robot descriptions: the model file, named joints with real limits, actuator models and sensors, engine-independent."""
