"""Who is behind a hit on the redirect path: people, probes, prefetches, previews, scanners, crawlers."""

# Whole User-Agent strings are the test data here; wrapping them would hide what a client sends.
# ruff: noqa: E501

from __future__ import annotations

import re

import crawleruseragents
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.hotpath.classify import (
    EXCLUDED_CRAWLER_PATTERNS,
    EXTRA_CRAWLER_PATTERNS,
    MAX_CACHED_UA_LENGTH,
    Kind,
    _alternation,
    classify,
    classify_user_agent,
    is_prefetch,
)

CRAWLER_LIST = crawleruseragents.CRAWLER_USER_AGENTS_DATA

IMESSAGE = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) "
    "Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0"
)
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)

PEOPLE = {
    # desktop, current
    "chrome-windows": CHROME_WINDOWS,
    "edge-windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "firefox-windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "safari-mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "chrome-mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "chrome-linux": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "firefox-ubuntu": "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "opera-windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
    "yandex-windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 YaBrowser/24.10.0.0 Safari/537.36",
    "vivaldi-windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Vivaldi/7.0.3495.18",
    "chromebook": "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    # desktop, older
    "ie11": "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "ie8": "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0; SLCC2; .NET CLR 2.0.50727; .NET CLR 3.5.30729; .NET CLR 3.0.30729; Media Center PC 6.0)",
    "edge-legacy": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.18363",
    "chrome-49-win7": "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/49.0.2623.112 Safari/537.36",
    "safari-9-mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_6) AppleWebKit/601.7.7 (KHTML, like Gecko) Version/9.1.2 Safari/601.7.7",
    "firefox-52-win7": "Mozilla/5.0 (Windows NT 6.1; rv:52.0) Gecko/20100101 Firefox/52.0",
    # mobile
    "ios-safari": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "ipad-safari": "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "ios-12-safari": "Mozilla/5.0 (iPhone; CPU iPhone OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1",
    "ios-chrome": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "ios-firefox": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/132.0 Mobile/15E148 Safari/605.1.15",
    "ios-edge": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/131.2903.68 Mobile/15E148 Safari/605.1.15",
    "ios-duckduckgo": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 DuckDuckGo/7 Safari/605.1.15",
    "ios-google-app": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/343.0.695551749 Mobile/15E148 Safari/604.1",
    "android-chrome": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "samsung-internet": "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "android-opera": "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 OPR/86.0.0.0",
    "android-firefox": "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
    "miui-browser": "Mozilla/5.0 (Linux; Android 12; M2101K6G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.5615.136 Mobile Safari/537.36 XiaoMi/MiuiBrowser/14.3.0-g",
    "uc-browser": "Mozilla/5.0 (Linux; U; Android 9; en-US; SM-J730F Build/PPR1.180610.011) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.108 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
    "huawei-browser": "Mozilla/5.0 (Linux; Android 10; HarmonyOS; ELS-NX9) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/99.0.4844.88 HuaweiBrowser/14.0.2.311 Mobile Safari/537.36",
    "amazon-silk": "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/131.3.1 like Chrome/131.0.6778.200 Safari/537.36",
    "android-4-chrome": "Mozilla/5.0 (Linux; Android 4.4.2; SM-G900F Build/KOT49H) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.135 Mobile Safari/537.36",
    "android-4-stock": "Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K) AppleWebkit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
    # in-app browsers: the people who tap a link inside an app
    "facebook-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21F79 [FBAN/FBIOS;FBAV/470.0.0.35.107;FBBV/620587232;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/622064282]",
    "facebook-android": "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/127.0.6533.103 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/478.0.0.41.86;]",
    "messenger-android": "Mozilla/5.0 (Linux; Android 11; RMX1931 Build/RKQ1.200928.002; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/93.0.4577.82 Mobile Safari/537.36 [FB_IAB/Orca-Android;FBAV/331.0.0.15.119;]",
    "facebook-metaiab-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/22G100 Safari/604.1 MetaIAB Facebook",
    "instagram-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 340.0.2.22.108 (iPhone14,5; iOS 17_5; en_US; en; scale=3.00; 1170x2532; 621036451; IABMV/1)",
    "instagram-android": "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.134 Mobile Safari/537.36 Instagram 339.0.0.36.117 Android (33/13; 480dpi; 1080x2176; samsung; SM-G991B; o1s; exynos2100; en_GB; 620151563)",
    "threads-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Barcelona 340.0.0.22.109 (iPhone14,5; iOS 17_5; en_US; en; scale=3.00; 1170x2532; 621036451)",
    "tiktok-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 musical_ly_35.1.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/US ByteFullLocale/en isDarkMode/0 WKWebView/1 RevealType/Dialog BytedanceWebview/d8a21c6 FalconTag/",
    "tiktok-android": "Mozilla/5.0 (Linux; Android 12; SM-A325F Build/SP1A.210812.016; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.193 Mobile Safari/537.36 trill_2023203030 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/trill app_version/32.3.3 ByteLocale/en ByteFullLocale/en Region/US Spark/1.4.6.3-bugfix AppVersion/32.3.3 BytedanceWebview/d8a21c6",
    "linkedin-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.29.8962",
    "linkedin-android": "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/118.0.5993.111 Mobile Safari/537.36 [LinkedInApp]/4.1.890",
    "telegram-android": "Mozilla/5.0 (Linux; Android 14; SM-S911B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 Telegram-Android/11.4.2 (Samsung SM-S911B; Android 14; SDK 34; HIGH)",
    "twitter-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/10.50",
    "twitter-android": "Mozilla/5.0 (Linux; Android 13; SM-G998B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/114.0.5735.196 Mobile Safari/537.36 TwitterAndroid",
    "snapchat-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/13.10.0.47 (like Safari/8617.2.4.10.8, panda)",
    "pinterest-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]",
    "line-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.8.0",
    "line-android": "Mozilla/5.0 (Linux; Android 13; SM-A528B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 Line/13.21.0/IAB",
    "viber-android": "Mozilla/5.0 (Linux; Android 10; Redmi Note 7 Build/QKQ1.190920.002; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/81.0.4044.138 Mobile Safari/537.36 Viber/14.7.0.4",
    "tumblr-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Tumblr/23.9.1.100",
    "wechat-android": "Mozilla/5.0 (Linux; Android 13; 22081212UG Build/TKQ1.220829.002; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 MMWEBID/2247 MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 Weixin NetType/WIFI Language/en ABI/arm64",
    "kakaotalk-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 KAKAOTALK 10.7.5",
    "naver-android": "Mozilla/5.0 (Linux; Android 12; SM-G977N Build/SP1A.210812.016; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/114.0.5735.196 Mobile Safari/537.36 NAVER(inapp; search; 1000; 12.1.2)",
    "reddit-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Reddit/Version 2024.22.0/Build 1574286/iOS Version 17.5",
    # desktop apps whose names are also crawler patterns
    "slack-desktop": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.97 Chrome/130.0.6723.59 Electron/33.0.2 Safari/537.36 Sonic Slack_SSB/4.41.97",
    "notion-desktop": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Notion/3.14.0 Chrome/124.0.6367.243 Electron/30.1.2 Safari/537.36",
    "teams-desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Teams/1.6.00.4472 Chrome/98.0.4758.141 Electron/17.4.1 Safari/537.36",
    # an Android app's own HTTP client: left alone on purpose
    "okhttp": "okhttp/4.12.0",
}

PREVIEW_BOTS = {
    "slackbot": "Slackbot 1.0 (+https://api.slack.com/robots)",
    "slackbot-link-expanding": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "slack-imgproxy": "Slack-ImgProxy (+https://api.slack.com/robots)",
    "telegram": "TelegramBot (like TwitterBot)",
    "whatsapp": "WhatsApp/2.23.20.0 A",
    "discord": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "linkedin": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "skype": "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
    "teams": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.74 Safari/537.36 Edg/79.0.309.43 MicrosoftPreview/2.0 +https://aka.ms/MicrosoftPreview",
    "facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "facebot": "Facebot/1.0",
    "twitter": "Twitterbot/1.0",
    "pinterest": "Mozilla/5.0 (compatible; Pinterestbot/1.0; +http://www.pinterest.com/bot.html)",
    "reddit": "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
    "viber": "Viber/18.0.1.286 CFNetwork/1335.0.3 Darwin/21.6.0",
    "line": "facebookexternalhit/1.1;line-poker/1.0",
    "snapchat": "Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots",
    "google-page-renderer": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/56.0.2924.87 Safari/537.36 Google-PageRenderer Google (+https://developers.google.com/+/web/snippet/)",
    "google-messages": "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 GoogleMessages/20",
    "embedly": "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
    "iframely": "Iframely/1.3.1 (+https://iframely.com/docs/about)",
    "vk": "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
    "mastodon": "http.rb/5.1.1 (Mastodon/4.2.0; +https://mastodon.social/)",
    "bluesky": "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
    "tumblr": "Tumblr/14.0.835.186",
    "notion": "Notion/1.0 (https://notion.so; team@makenotion.com)",
}

MAIL_SCANNERS = {
    "barracuda": "Barracuda Sentinel (EE)",
    # Proofpoint and Mimecast mostly send browser UAs; these stand for the fetches that name them.
    "proofpoint": "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
    "mimecast": "Mozilla/5.0 (compatible; Mimecast URL Protect)",
    "office-existence-discovery": "Microsoft Office Existence Discovery",
    "office-protocol-discovery": "Microsoft Office Protocol Discovery",
    "outlook-link-probe": "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
    "gmail": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0",
}

TOOLS = {
    "curl": "curl/8.5.0",
    "wget": "Wget/1.21.4",
    "python-requests": "python-requests/2.32.3",
    "go": "Go-http-client/2.0",
    "headless-chrome": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
    "phantomjs": "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
}


def _crawler_list_instances() -> list[object]:
    return [
        pytest.param(instance, id=f"{entry['pattern']}#{number}")
        for entry in CRAWLER_LIST
        if entry["pattern"] not in EXCLUDED_CRAWLER_PATTERNS
        for number, instance in enumerate(entry["instances"])
    ]


@pytest.mark.parametrize("user_agent", _crawler_list_instances())
def test_every_crawler_list_example_is_not_a_person(user_agent: str) -> None:
    assert classify_user_agent(user_agent) is not Kind.PERSON


@pytest.mark.parametrize(
    "pattern",
    [
        "Slackbot",
        "Slack-ImgProxy",
        "TelegramBot",
        "WhatsApp",
        "Discordbot",
        "LinkedInBot",
        "SkypeUriPreview",
        r"MicrosoftPreview\/",
        "facebookexternalhit",
        "Twitterbot",
        r"pinterest\.com\/bot",
        "redditbot",
        "Embedly",
        "Iframely",
        "vkShare",
        "Mastodon",
        "Viber",
        r"Tumblr\/",
        r"Notion\/",
    ],
)
def test_crawler_list_examples_of_preview_bots_come_out_as_preview(pattern: str) -> None:
    (entry,) = [entry for entry in CRAWLER_LIST if entry["pattern"] == pattern]
    assert entry["instances"]
    for instance in entry["instances"]:
        assert classify_user_agent(instance) is Kind.PREVIEW, instance


def test_excluded_crawler_patterns_are_still_in_the_crawler_list() -> None:
    # An exclusion that no longer names a pattern has stopped protecting anyone.
    assert EXCLUDED_CRAWLER_PATTERNS.issubset(entry["pattern"] for entry in CRAWLER_LIST)


def test_compiled_crawler_regex_flags_exactly_what_its_patterns_flag() -> None:
    # The one regex is an optimised rewrite of the list; it must not change what matches.
    patterns = [entry["pattern"] for entry in CRAWLER_LIST] + list(EXTRA_CRAWLER_PATTERNS)
    one_by_one = [re.compile(pattern) for pattern in patterns]
    combined = re.compile(_alternation(patterns))
    samples = [instance for entry in CRAWLER_LIST for instance in entry["instances"]]
    for user_agent in samples + list(PEOPLE.values()):
        expected = any(pattern.search(user_agent) for pattern in one_by_one)
        assert bool(combined.search(user_agent)) == expected, user_agent


@pytest.mark.parametrize("user_agent", PEOPLE.values(), ids=PEOPLE.keys())
def test_real_browser_is_a_person(user_agent: str) -> None:
    assert classify_user_agent(user_agent) is Kind.PERSON
    assert classify("GET", user_agent, "") is Kind.PERSON


@pytest.mark.parametrize("user_agent", PREVIEW_BOTS.values(), ids=PREVIEW_BOTS.keys())
def test_link_preview_bot_is_flagged_as_preview(user_agent: str) -> None:
    assert classify_user_agent(user_agent) is Kind.PREVIEW


def test_imessage_preview_is_flagged_as_preview() -> None:
    assert classify_user_agent(IMESSAGE) is Kind.PREVIEW


@pytest.mark.parametrize("user_agent", MAIL_SCANNERS.values(), ids=MAIL_SCANNERS.keys())
def test_mail_link_scanner_is_flagged_as_scanner(user_agent: str) -> None:
    assert classify_user_agent(user_agent) is Kind.SCANNER


@pytest.mark.parametrize("user_agent", TOOLS.values(), ids=TOOLS.keys())
def test_http_tool_or_headless_browser_is_a_crawler(user_agent: str) -> None:
    assert classify_user_agent(user_agent) is Kind.CRAWLER


def test_search_engine_bot_is_a_crawler() -> None:
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    assert classify_user_agent(googlebot) is Kind.CRAWLER


@pytest.mark.parametrize("user_agent", ["", " ", "\t\r\n", "\u3000"])
def test_empty_or_blank_user_agent_is_a_crawler(user_agent: str) -> None:
    assert classify_user_agent(user_agent) is Kind.CRAWLER
    assert classify("GET", user_agent, "") is Kind.CRAWLER


def test_user_agent_longer_than_the_cache_limit_is_still_classified() -> None:
    padding = " x" * MAX_CACHED_UA_LENGTH
    assert classify_user_agent(CHROME_WINDOWS + padding) is Kind.PERSON
    assert classify_user_agent(CHROME_WINDOWS + padding + " Googlebot/2.1") is Kind.CRAWLER


def test_repeated_user_agent_gets_the_same_answer() -> None:
    assert classify_user_agent(IMESSAGE) is classify_user_agent(IMESSAGE) is Kind.PREVIEW


@pytest.mark.parametrize("user_agent", [CHROME_WINDOWS, IMESSAGE, "curl/8.5.0", ""])
@pytest.mark.parametrize("purpose", ["", "prefetch"])
def test_head_request_is_head_whatever_the_user_agent(user_agent: str, purpose: str) -> None:
    assert classify("HEAD", user_agent, purpose) is Kind.HEAD


@pytest.mark.parametrize(
    "purpose",
    [
        "prefetch",  # Sec-Purpose, Chrome speculation rules
        "prefetch;prerender",  # Sec-Purpose, Chrome prerender
        "prefetch;anonymous-client-ip",  # Sec-Purpose, Chrome's private prefetch proxy
        "prefetch,",  # Purpose: prefetch, as the redirect joins header values
        "Prefetch",
        "PRERENDER",
        "preview",  # X-Purpose, Safari's Top Sites
        ", prefetch",
        "navigate, prefetch ; prerender",
    ],
)
def test_prefetch_or_prerender_purpose_is_prefetch(purpose: str) -> None:
    assert is_prefetch(purpose)
    assert classify("GET", CHROME_WINDOWS, purpose) is Kind.PREFETCH


@pytest.mark.parametrize("purpose", ["", ",", "navigate", "prefetcher", "no-prefetch", "pre fetch"])
def test_other_purpose_is_not_prefetch(purpose: str) -> None:
    assert not is_prefetch(purpose)
    assert classify("GET", CHROME_WINDOWS, purpose) is Kind.PERSON


def test_prefetch_is_decided_before_the_user_agent() -> None:
    assert classify("GET", IMESSAGE, "prefetch") is Kind.PREFETCH
    assert classify("GET", "", "prefetch") is Kind.PREFETCH


def test_only_person_is_a_person() -> None:
    assert [kind for kind in Kind if kind.is_person] == [Kind.PERSON]


def test_kinds_are_plain_strings() -> None:
    assert Kind("preview") is Kind.PREVIEW
    assert f"{Kind.SCANNER}" == str(Kind.SCANNER) == "scanner"


_repeated_text = st.builds(
    lambda chunk, times: (chunk * times)[:10_000],
    st.text(min_size=1, max_size=40),
    st.integers(min_value=1, max_value=10_000),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=10_000), _repeated_text))
def test_any_text_is_classified_without_raising(user_agent: str) -> None:
    assert classify_user_agent(user_agent) in set(Kind) - {Kind.HEAD, Kind.PREFETCH}
