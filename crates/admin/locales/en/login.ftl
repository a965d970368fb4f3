# Signing in and out.
login-title = Sign in
login-help = Paste your API token. An administrator creates it with
login-token = API token
login-token-placeholder = whk_…
login-button = Sign in
login-token-missing = Enter your API token.
login-token-invalid = That token is not valid, or it was revoked.
login-throttled = { $minutes ->
    [one] Too many failed sign-ins from your address. Try again in 1 minute.
   *[other] Too many failed sign-ins from your address. Try again in { $minutes } minutes.
}
login-too-large = The form is too large.
login-session-ended = Your session ended before the form was sent, so nothing was saved. Sign in again: the form comes back with what you typed, ready to send.
login-sign-out-title = Sign out
login-sign-out-button = Sign out now
