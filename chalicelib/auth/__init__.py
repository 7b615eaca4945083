"""Who may call the API: principals (pure), OIDC settings (pure) and JWT verification (PyJWT, authorizer only)."""
