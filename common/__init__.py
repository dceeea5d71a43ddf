"""Small cross-cutting helpers shared by every flow: errors, CLI exit codes, secrets, redaction."""
