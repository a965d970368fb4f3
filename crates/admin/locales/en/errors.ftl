# Error pages.
errors-not-found-title = Not found
errors-not-found-webhook = There is no such webhook, or it is not yours.
errors-not-found-delivery = There is no such delivery for this webhook.
errors-not-found-page = There is no page at this address.
errors-forbidden-title = Refused
errors-forbidden-text = The form's security token is missing or out of date. Reload the page you came from and submit the form again.
errors-bad-request-title = Bad request
errors-conflict-title = Not possible right now
errors-busy-title = Busy: try again in a moment
errors-internal-title = Something went wrong
errors-internal-text = The request failed on our side; it has been logged. Try again in a moment.
errors-back = Back to your webhooks
