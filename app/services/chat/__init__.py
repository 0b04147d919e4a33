"""Chat: generations (event logs that outlive connections), the agent loop, history."""
