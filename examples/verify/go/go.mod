module example.com/webhookd-verify

go 1.19
