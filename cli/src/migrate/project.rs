//! A migrations project: its config file (`ksql-migrations.properties`) and its
//! migration files, `migrations/V<six digit version>__<description>.sql`.

use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "ksql-migrations.properties";

pub struct Config {
    pub server_url: String,
    pub stream: String,
    pub table: String,
    pub stream_topic: Option<String>,
    pub table_topic: Option<String>,
    pub replicas: u32,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `ssl.ca.location`: a PEM certificate to trust for an HTTPS server.
    pub ca_file: Option<PathBuf>,
    pub migrations_dir: PathBuf,
}

impl Config {
    /// Reads a config file; the migrations folder is beside it unless
    /// `ksql.migrations.dir.override` says otherwise.
    pub fn load(path: &Path) -> Result<Self, String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        let values = java_properties::read(std::io::BufReader::new(file))
            .map_err(|e| format!("{} is not a properties file: {e}", path.display()))?;
        let get = |k: &str| values.get(k).filter(|v| !v.is_empty()).cloned();
        let server_url = get("ksql.server.url")
            .ok_or_else(|| format!("{} sets no ksql.server.url", path.display()))?;
        let replicas = match get("ksql.migrations.topic.replicas") {
            Some(r) => r
                .parse()
                .map_err(|_| format!("ksql.migrations.topic.replicas is not a number: {r}"))?,
            None => 1,
        };
        let project = path.parent().unwrap_or(Path::new("."));
        Ok(Self {
            server_url,
            stream: get("ksql.migrations.stream.name").unwrap_or("MIGRATION_EVENTS".into()),
            table: get("ksql.migrations.table.name").unwrap_or("MIGRATION_SCHEMA_VERSIONS".into()),
            stream_topic: get("ksql.migrations.stream.topic.name"),
            table_topic: get("ksql.migrations.table.topic.name"),
            replicas,
            user: get("ksql.auth.basic.username"),
            password: get("ksql.auth.basic.password"),
            ca_file: get("ssl.ca.location").map(PathBuf::from),
            migrations_dir: get("ksql.migrations.dir.override")
                .map(PathBuf::from)
                .unwrap_or_else(|| project.join("migrations")),
        })
    }
}

/// Creates a project folder with its config file and an empty migrations folder.
pub fn new_project(dir: &Path, url: &str) -> Result<(), String> {
    println!("Creating new migrations project at {}", dir.display());
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations)
        .map_err(|e| format!("cannot create {}: {e}", migrations.display()))?;
    let config = dir.join(CONFIG_FILE);
    if config.exists() {
        return Err(format!("{} already exists", config.display()));
    }
    let text = format!(
        "ksql.server.url={url}\n\
         # ksql.auth.basic.username=\n\
         # ksql.auth.basic.password=\n\
         # ssl.ca.location=\n\
         # ksql.migrations.stream.name=MIGRATION_EVENTS\n\
         # ksql.migrations.table.name=MIGRATION_SCHEMA_VERSIONS\n\
         # ksql.migrations.stream.topic.name=\n\
         # ksql.migrations.table.topic.name=\n\
         # ksql.migrations.topic.replicas=1\n\
         # ksql.migrations.dir.override=\n"
    );
    std::fs::write(&config, text).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    println!("Writing to config file: ksql.server.url={url}");
    println!("Migrations project directory created successfully");
    Ok(())
}

/// A migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: u32,
    /// The description, with `_` shown as spaces.
    pub name: String,
    pub path: PathBuf,
}

impl Migration {
    pub fn contents(&self) -> Result<String, String> {
        std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))
    }

    /// The MD5 of the file, in hex, as ksql-migrations records it.
    pub fn checksum(&self) -> Result<String, String> {
        use md5::Digest as _;
        let bytes = std::fs::read(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        Ok(md5::Md5::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

/// The migration files, by version. Other files in the folder are an error, as are two
/// files with one version.
pub fn migrations(dir: &Path) -> Result<Vec<Migration>, String> {
    let pattern = regex::Regex::new(r"^V([0-9]{6})__(.+)\.sql$").map_err(|e| e.to_string())?;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the migrations folder {}: {e}", dir.display()))?;
    let mut found: Vec<Migration> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(parts) = pattern.captures(&file) else {
            return Err(format!(
                "{} is not named as a migration file: V<six digit version>__<description>.sql",
                path.display()
            ));
        };
        let version: u32 = parts[1]
            .parse()
            .map_err(|_| format!("bad version in {file}"))?;
        if version == 0 {
            return Err(format!("{file}: 0 is not a valid migration version"));
        }
        if let Some(other) = found.iter().find(|m| m.version == version) {
            return Err(format!(
                "{} and {} have the same version {version}",
                other.path.display(),
                path.display()
            ));
        }
        found.push(Migration {
            version,
            name: parts[2].replace('_', " "),
            path,
        });
    }
    found.sort_by_key(|m| m.version);
    Ok(found)
}

/// Creates an empty migration file: the next version, or `version`.
pub fn create(dir: &Path, description: &str, version: Option<u32>) -> Result<PathBuf, String> {
    if description.trim().is_empty() {
        return Err("a migration needs a description".into());
    }
    let existing = migrations(dir)?;
    let version = match version {
        Some(0) => return Err("0 is not a valid migration version".into()),
        Some(v) if existing.iter().any(|m| m.version == v) => {
            return Err(format!("a migration file with version {v} already exists"))
        }
        Some(v) => v,
        None => existing.last().map(|m| m.version + 1).unwrap_or(1),
    };
    if version > 999_999 {
        return Err(format!("version {version} has more than six digits"));
    }
    let file = dir.join(format!(
        "V{version:06}__{}.sql",
        description.trim().replace(' ', "_")
    ));
    println!("Creating migration file: {}", file.display());
    std::fs::write(&file, "").map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    println!("Migration file successfully created");
    Ok(file)
}
