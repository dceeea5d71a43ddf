"""Canvas SIS imports: settings, an httpx client with retries in the transport, option validation,
input packaging, Prefect tasks, and a sandbox emulator for tests and demos."""
