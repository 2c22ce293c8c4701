//! What a user agent says of its visitor's device and OS, for redirect rules: one
//! pass over the header looking for the marks browsers have long sent, remembered
//! per thread for the few agents that bring most of the traffic.

use std::cell::RefCell;
use std::hash::BuildHasher;

use crate::route::{Device, Os};

/// A device and OS as a user agent names them (neither for an empty one).
pub type Agent = (Option<Device>, Option<Os>);

/// Longest user agent looked at; the rest never changes a device or an OS.
const MAX_AGENT: usize = 512;

/// The marks a user agent is classified by, matched ASCII-case-insensitively; the
/// first [`BOTS`] are crawlers, link previewers and HTTP libraries.
const MARKS: [&str; 27] = [
    "bot",
    "crawl",
    "spider",
    "slurp",
    "facebookexternalhit",
    "whatsapp",
    "linkexpanding",
    "headlesschrome",
    "curl/",
    "wget/",
    "python-",
    "go-http-client",
    "ipad",
    "tablet",
    "kindle",
    "silk/",
    "android",
    "mobile",
    "mobi",
    "iphone",
    "ipod",
    "phone",
    "; cros",
    "windows",
    "macintosh",
    "mac os x",
    "linux",
];
/// The first marks of [`MARKS`] name bots.
const BOTS: u32 = (1 << 12) - 1;

/// The bit of `mark` in what a [`classify`] pass has seen (its place in [`MARKS`]),
/// worked out when the crate is compiled.
const fn bit(mark: &str) -> u32 {
    let mut i = 0;
    while i < MARKS.len() {
        let (a, b) = (MARKS[i].as_bytes(), mark.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return 1 << i;
            }
        }
        i += 1;
    }
    panic!("not one of MARKS")
}

const IPAD: u32 = bit("ipad");
const TABLET: u32 = bit("tablet") | bit("kindle") | bit("silk/");
const ANDROID: u32 = bit("android");
const MOBILE: u32 = bit("mobile");
const PHONE: u32 = bit("mobi") | bit("iphone") | bit("ipod") | bit("phone");
const IOS: u32 = bit("iphone") | IPAD | bit("ipod");
const CHROMEOS: u32 = bit("; cros");
const WINDOWS: u32 = bit("windows");
const MACOS: u32 = bit("macintosh") | bit("mac os x");
const LINUX: u32 = bit("linux");

/// For each byte a mark can start with (in either case), the marks starting with it:
/// a pass over a user agent compares, at each byte, only the marks that could begin
/// there, from a table that fits in a few cache lines.
const STARTS: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < MARKS.len() {
        let first = MARKS[i].as_bytes()[0];
        table[first as usize] |= 1 << i;
        table[first.to_ascii_uppercase() as usize] |= 1 << i;
        i += 1;
    }
    table
};

/// The marks found in `ua` (ASCII case ignored), as bits of [`MARKS`].
fn marks_in(ua: &[u8]) -> u32 {
    let mut seen = 0u32;
    for (at, &byte) in ua.iter().enumerate() {
        let mut candidates = STARTS[usize::from(byte)] & !seen;
        while candidates != 0 {
            let i = candidates.trailing_zeros();
            candidates &= candidates - 1;
            // The second byte settles most candidates before a whole compare.
            let found = MARKS.get(i as usize).is_some_and(|mark| {
                let mark = mark.as_bytes();
                ua.get(at + 1)
                    .is_some_and(|b| b.to_ascii_lowercase() == mark[1])
                    && ua
                        .get(at..at + mark.len())
                        .is_some_and(|s| s.eq_ignore_ascii_case(mark))
            });
            if found {
                seen |= 1 << i;
            }
        }
    }
    seen
}

/// The device and OS a user agent names, by the marks browsers have long sent:
/// crawlers and HTTP libraries are bots; iPads, Android without `Mobile`, Kindles
/// are tablets; `Mobi`, iPhones, Android phones are mobile; the rest desktop. An
/// empty user agent names neither.
pub fn classify(user_agent: &str) -> Agent {
    if user_agent.is_empty() {
        return (None, None);
    }
    let seen = marks_in(&user_agent.as_bytes()[..user_agent.len().min(MAX_AGENT)]);
    let has = |marks: u32| seen & marks != 0;
    let device = if has(BOTS) {
        Device::Bot
    } else if has(IPAD | TABLET) || (has(ANDROID) && !has(MOBILE)) {
        Device::Tablet
    } else if has(PHONE | ANDROID) {
        Device::Mobile
    } else {
        Device::Desktop
    };
    let os = if has(IOS) {
        Some(Os::Ios)
    } else if has(ANDROID) {
        Some(Os::Android)
    } else if has(CHROMEOS) {
        Some(Os::Chromeos)
    } else if has(WINDOWS) {
        Some(Os::Windows)
    } else if has(MACOS) {
        Some(Os::Macos)
    } else if has(LINUX) {
        Some(Os::Linux)
    } else {
        None
    };
    (Some(device), os)
}

/// Agents remembered per thread. Most follows come from a few browser builds, so a
/// small direct-mapped table answers nearly all of them from one compare; an agent
/// that misses, or lost its slot to another, is classified again, which costs no
/// more than without the table: agents crafted to collide cannot make it slower.
const MEMO_SLOTS: usize = 64;
/// Longest agent remembered: browsers send 100–200 bytes, in-app browsers up to
/// about 300; a longer one is classified every time.
const MEMO_AGENT: usize = 320;

#[derive(Clone, Copy)]
struct Remembered {
    /// 0: an empty slot (an empty agent is never remembered).
    len: u16,
    agent: Agent,
    bytes: [u8; MEMO_AGENT],
}

const FORGOTTEN: Remembered = Remembered {
    len: 0,
    agent: (None, None),
    bytes: [0; MEMO_AGENT],
};

thread_local! {
    static MEMO: RefCell<[Remembered; MEMO_SLOTS]> = const { RefCell::new([FORGOTTEN; MEMO_SLOTS]) };
}

/// [`classify`], answered from this thread's table of recent agents when it holds
/// `user_agent`.
pub fn agent_of(user_agent: &str) -> Agent {
    let bytes = user_agent.as_bytes();
    if bytes.is_empty() || bytes.len() > MEMO_AGENT {
        return classify(user_agent);
    }
    // The slot only spreads agents: a fixed seed is enough, every hit is compared.
    let slot = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(bytes) as usize % MEMO_SLOTS;
    MEMO.with(|memo| {
        let Ok(mut memo) = memo.try_borrow_mut() else {
            return classify(user_agent);
        };
        let Some(entry) = memo.get_mut(slot) else {
            return classify(user_agent);
        };
        if entry.bytes.get(..usize::from(entry.len)) == Some(bytes) {
            return entry.agent;
        }
        let agent = classify(user_agent);
        if let Some(kept) = entry.bytes.get_mut(..bytes.len()) {
            kept.copy_from_slice(bytes);
            entry.len = bytes.len() as u16;
            entry.agent = agent;
        }
        agent
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    pub(crate) const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
    pub(crate) const PIXEL: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
    pub(crate) const GALAXY_TAB: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    pub(crate) const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    pub(crate) const MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15";
    pub(crate) const LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    pub(crate) const CHROMEBOOK: &str = "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    pub(crate) const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    const CASES: [(&str, Device, Option<Os>); 10] = [
        (IPHONE, Device::Mobile, Some(Os::Ios)),
        (IPAD, Device::Tablet, Some(Os::Ios)),
        (PIXEL, Device::Mobile, Some(Os::Android)),
        (GALAXY_TAB, Device::Tablet, Some(Os::Android)),
        (WINDOWS, Device::Desktop, Some(Os::Windows)),
        (MAC, Device::Desktop, Some(Os::Macos)),
        (LINUX, Device::Desktop, Some(Os::Linux)),
        (CHROMEBOOK, Device::Desktop, Some(Os::Chromeos)),
        (GOOGLEBOT, Device::Bot, None),
        ("curl/8.5.0", Device::Bot, None),
    ];

    #[test]
    fn user_agents_name_their_device_and_os() {
        for (ua, device, os) in CASES {
            assert_eq!(classify(ua), (Some(device), os), "{ua}");
        }
        assert_eq!(classify(""), (None, None));
    }

    #[test]
    fn the_memo_answers_what_classify_does_however_agents_collide() {
        // Far more agents than slots, each asked twice in a row and again after
        // the others: every answer, remembered or pushed out, is classify's.
        let mut agents: Vec<String> = Vec::new();
        for round in 0..40 {
            for (ua, _, _) in CASES {
                agents.push(format!("{ua} build/{round}"));
            }
        }
        agents.push("x".repeat(MEMO_AGENT));
        agents.push(format!("{} iPhone", "x".repeat(MEMO_AGENT)));
        agents.push(String::new());
        for _ in 0..2 {
            for ua in &agents {
                assert_eq!(agent_of(ua), classify(ua), "{ua}");
                assert_eq!(agent_of(ua), classify(ua), "{ua}");
            }
        }
        // A prefix of a remembered agent is not that agent.
        assert_eq!(agent_of(IPHONE), (Some(Device::Mobile), Some(Os::Ios)));
        assert_eq!(agent_of(&IPHONE[..12]), classify(&IPHONE[..12]));
    }
}
