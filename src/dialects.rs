//! The composition root: the one place that names the vendor dialects.

use std::collections::BTreeMap;
use std::sync::Arc;

use zipgate_api::{mount, Mounted, Settings};

/// Every dialect zipgate serves, built with its `--set NAME.KEY=VALUE` settings.
pub fn build(settings: &BTreeMap<String, Settings>) -> Result<Vec<Arc<dyn Mounted>>, String> {
    let none = Settings::new();
    let get = |name: &str| settings.get(name).unwrap_or(&none);
    let dialects = vec![
        mount(zipgate_box::BoxDialect::new(get("box"))?),
        mount(zipgate_onlyoffice::OnlyofficeDialect::new(get(
            "onlyoffice",
        ))?),
        mount(zipgate_oracle::OracleDialect::new(get("oracle"))?),
        mount(zipgate_itslearning::ItslearningDialect::new(get(
            "itslearning",
        ))?),
        mount(zipgate_dropbox::DropboxDialect::new(get("dropbox"))?),
    ];
    for name in settings.keys() {
        if !dialects.iter().any(|d| d.name() == name) {
            let known: Vec<&str> = dialects.iter().map(|d| d.name()).collect();
            return Err(format!(
                "--set {name}.…: no dialect named {name:?} (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(dialects)
}

/// Splits `box.url_ttl=60` into dialect `box`, key `url_ttl`, value `60`.
pub fn parse_setting(text: &str) -> Result<(String, String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected DIALECT.KEY=VALUE"))?;
    let (dialect, key) = key
        .split_once('.')
        .ok_or_else(|| format!("{text:?}: expected DIALECT.KEY=VALUE"))?;
    if dialect.is_empty() || key.is_empty() {
        return Err(format!("{text:?}: expected DIALECT.KEY=VALUE"));
    }
    Ok((dialect.to_owned(), key.to_owned(), value.to_owned()))
}
