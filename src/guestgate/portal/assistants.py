"""Captive-network assistants: the small browser windows phones and laptops open on a captive network.

Google refuses sign-in inside embedded web views (`disallowed_useragent`), and these windows
are embedded web views, so the page must recognise them from the User-Agent and send the
guest to the real browser instead. What is recognised:

- `CaptiveNetworkSupport` or `wispr`: Apple's captive-network agent (iOS, iPadOS, macOS);
  its probes and, on some versions, the assistant's own page loads carry it.
- iPhone, iPad or iPod WebKit without `Safari/`: the iOS captive sheet (every real iOS
  browser, Safari, Chrome `CriOS` or Firefox `FxiOS`, says `Safari/`).
- Macintosh WebKit without `Safari/`: macOS's Captive Network Assistant app.
- Android with the `; wv)` WebView token: Android's captive portal login app
  (com.android.captiveportallogin) runs in a WebView.
- `Microsoft NCSI`: Windows' connectivity probe. Windows 10 and 11 open the captive page in
  the default browser, so their real pages are not recognised, and need not be.

In-app browsers (a link opened inside a chat app) match some of these rules too; Google refuses
those as well, so the same advice is right for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Longer headers are not parsed (no real browser sends that much).
MAX_USER_AGENT = 1024
_APPLE_AGENT = re.compile(r"CaptiveNetworkSupport|\bwispr\b", re.IGNORECASE)
_IOS = re.compile(r"\((?:iPhone|iPad|iPod)\b")
_MAC = re.compile(r"\(Macintosh\b")
_ANDROID_WEBVIEW = re.compile(r"\bAndroid\b.*;\s*wv\)")
_WINDOWS_PROBE = re.compile(r"Microsoft NCSI", re.IGNORECASE)


@dataclass(frozen=True)
class Assistant:
    """A recognised captive-network window: its platform and the browser to continue in."""

    platform: str
    browser: str | None


def detect(user_agent: str | None) -> Assistant | None:
    """The captive-network assistant this User-Agent belongs to, or None for a real browser."""
    if not user_agent or len(user_agent) > MAX_USER_AGENT:
        return None
    ios = _IOS.search(user_agent) is not None
    mac = not ios and _MAC.search(user_agent) is not None
    if _APPLE_AGENT.search(user_agent):
        return Assistant("macos" if mac else "ios", "Safari")
    webkit = "AppleWebKit/" in user_agent
    if ios and webkit and "Safari/" not in user_agent:
        return Assistant("ios", "Safari")
    if mac and webkit and "Safari/" not in user_agent and "Chrome/" not in user_agent:
        return Assistant("macos", "Safari")
    if _ANDROID_WEBVIEW.search(user_agent):
        return Assistant("android", "Chrome")
    if _WINDOWS_PROBE.search(user_agent):
        return Assistant("windows", None)
    return None
