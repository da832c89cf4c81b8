//! The vendor's error catalogue: .NET exceptions with their HTTP status and
//! `hresult`, as `ApiHttpHandler` (Workspace) and `CustomExceptionHandler`
//! (DocSpace) map them.

use http::StatusCode;

/// One error the API answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OoError {
    pub status: StatusCode,
    pub message: String,
    pub hresult: i64,
    /// The .NET exception type DocSpace names in `error.type`.
    pub exception: &'static str,
}

const INVALID_OPERATION: i64 = -2146233079;
const ARGUMENT: i64 = -2147024809;
const GENERIC: i64 = -2146233088;
const MISSING_METHOD: i64 = -2146233069;
const XML: i64 = -2146232000;
/// COR_E_FILENOTFOUND (0x80070002) and COR_E_DIRECTORYNOTFOUND (0x80070003).
const FILE_NOT_FOUND_HRESULT: i64 = -2147024894;
const DIRECTORY_NOT_FOUND_HRESULT: i64 = -2147024893;

impl OoError {
    fn new(status: StatusCode, message: &str, hresult: i64, exception: &'static str) -> Self {
        OoError {
            status,
            message: message.to_owned(),
            hresult,
            exception,
        }
    }

    /// Both id lists empty (Workspace).
    pub fn bad_request() -> Self {
        OoError::new(
            StatusCode::FORBIDDEN,
            "Bad request.",
            INVALID_OPERATION,
            "System.InvalidOperationException",
        )
    }

    /// The caller already has a download that has not finished.
    pub fn too_many_downloads() -> Self {
        OoError::new(
            StatusCode::FORBIDDEN,
            "Too many downloads.",
            INVALID_OPERATION,
            "System.InvalidOperationException",
        )
    }

    /// DocSpace's permission check before queuing found nothing readable
    /// (`DownloadPermissionsCheck.cs`): `FileNotFoundException` when files
    /// were asked for, else `DirectoryNotFoundException`, both 404
    /// (`ResponseWrapper.cs`).
    pub fn nothing_to_download(files_asked: bool) -> Self {
        if files_asked {
            OoError::new(
                StatusCode::NOT_FOUND,
                FILE_NOT_FOUND,
                FILE_NOT_FOUND_HRESULT,
                "System.IO.FileNotFoundException",
            )
        } else {
            OoError::new(
                StatusCode::NOT_FOUND,
                FOLDER_NOT_FOUND,
                DIRECTORY_NOT_FOUND_HRESULT,
                "System.IO.DirectoryNotFoundException",
            )
        }
    }

    /// `ASC.Common.Web.HttpException`, which DocSpace's exception handler
    /// does not map: the default 500 (`ResponseWrapper.cs`).
    pub fn unmapped_http_exception() -> Self {
        OoError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Exception of type 'ASC.Common.Web.HttpException' was thrown.",
            GENERIC,
            "ASC.Common.Web.HttpException",
        )
    }

    /// The same id twice in one list: `Dictionary.Add` throws.
    pub fn duplicate_key() -> Self {
        OoError::new(
            StatusCode::BAD_REQUEST,
            "An item with the same key has already been added.",
            ARGUMENT,
            "System.ArgumentException",
        )
    }

    /// The JSON parser's own message (the wrapper is unwrapped to the innermost exception).
    pub fn malformed_json(message: &str) -> Self {
        OoError::new(
            StatusCode::BAD_REQUEST,
            message,
            GENERIC,
            "Newtonsoft.Json.JsonReaderException",
        )
    }

    /// `XDocument.Load` fails outside the argument mapping, so this is a 500.
    pub fn malformed_xml(message: &str) -> Self {
        OoError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
            XML,
            "System.Xml.XmlException",
        )
    }

    /// A route that exists, with a verb it does not take.
    pub fn method_not_found() -> Self {
        OoError::new(
            StatusCode::NOT_FOUND,
            "Method not found",
            MISSING_METHOD,
            "System.MissingMethodException",
        )
    }

    /// A fault injected with this status: the message in the vendor's
    /// envelope, from a plain .NET exception.
    pub fn for_status(status: StatusCode, message: &str) -> Self {
        OoError::new(status, message, GENERIC, "System.Exception")
    }

    /// A body that flattens to more pairs, or more bytes of them, than
    /// zipgate keeps. ASP.NET refuses a form of more than 1000 keys
    /// (`MaxHttpCollectionKeys`); zipgate caps JSON and XML bodies the same
    /// way and answers like the argument builder's other failures: a 400
    /// `ArgumentException`.
    pub fn too_many_parameters(pairs: usize, bytes: usize) -> Self {
        OoError::new(StatusCode::BAD_REQUEST,
            &format!(
                "The request has too many parameters: more than {pairs} name/value pairs or {bytes} bytes of them."
            ),
            ARGUMENT,
            "System.ArgumentException",
        )
    }

    pub fn body_too_large(limit: usize) -> Self {
        OoError::new(
            StatusCode::BAD_REQUEST,
            &format!("Maximum request length exceeded ({limit} bytes)."),
            GENERIC,
            "System.Web.HttpException",
        )
    }
}

/// Messages an operation finishes with.
pub const FILE_NOT_FOUND: &str = "The required file was not found";
pub const FOLDER_NOT_FOUND: &str = "The required folder was not found";
pub const CANCELED: &str = "The operation was canceled";
