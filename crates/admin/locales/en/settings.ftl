# The settings page.
settings-title = Settings
settings-time-zone = Time zone
settings-tz-browser = Your browser's ({ $zone })
settings-tz-browser-unknown = Your browser's (UTC until it is known)
settings-tz-help = Times on every page are shown in this zone; hover over one to see it in UTC.
settings-tz-now = Now:
settings-tz-unknown = Choose a time zone from the list.
settings-language = Language
settings-save = Save
