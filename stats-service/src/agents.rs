//! How stats-service files a user agent: browser, OS, device category and crawler,
//! by woothee's rules, off the redirect path.

use common::clicks::Agent;

/// Classifies a user agent (woothee's rules: browser, OS, device category, crawler).
pub fn classify_agent(user_agent: Option<&str>) -> Agent {
    let unknown = || "Other".to_string();
    let Some(ua) = user_agent else {
        return Agent {
            browser: unknown(),
            os: unknown(),
            device: unknown(),
            bot: false,
        };
    };
    match woothee::parser::Parser::new().parse(ua) {
        Some(result) => {
            let bot = result.category == "crawler";
            let device = match result.category {
                "pc" => "Desktop",
                "smartphone" | "mobilephone" => "Mobile",
                "crawler" => "Bot",
                "appliance" => "Appliance",
                _ => "Other",
            };
            let name = |s: &str| {
                if s.is_empty() || s == "UNKNOWN" {
                    unknown()
                } else {
                    s.to_string()
                }
            };
            Agent {
                browser: name(result.name),
                os: name(result.os),
                device: device.to_string(),
                bot,
            }
        }
        None => Agent {
            browser: unknown(),
            os: unknown(),
            device: unknown(),
            bot: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_browsers_and_bots() {
        let bot = classify_agent(Some(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ));
        assert!(bot.bot);
        let firefox = classify_agent(Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ));
        assert_eq!(firefox.browser, "Firefox");
        assert_eq!(firefox.os, "Linux");
        assert_eq!(firefox.device, "Desktop");
        assert!(!firefox.bot);
        assert_eq!(classify_agent(None).browser, "Other");
    }
}
