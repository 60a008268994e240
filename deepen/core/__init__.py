"""What every stage uses: atomic writes, logs, the device and disk checks, statistics, the settings schema."""
