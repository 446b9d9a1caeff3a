"""What every layer shares: the registry and its data, requests and events, configuration, prompts, devices."""
