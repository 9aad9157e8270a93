//! The test files are read as Jackson reads them, which allows `//` and `/* */` comments.

/// `text` with comments outside string literals replaced by spaces.
pub fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_slashes_inside_strings() {
        let text = "{\"u\": \"http://x\", // note\n \"v\": 1 /* c */}";
        let v: serde_json::Value = serde_json::from_str(&super::strip_comments(text)).unwrap();
        assert_eq!(v["u"], "http://x");
        assert_eq!(v["v"], 1);
    }
}
