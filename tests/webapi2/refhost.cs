using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using System.Security.Principal;
using System.Web.Http;
using System.Web.Http.Controllers;
using System.Web.Http.Filters;

namespace Itslearning.RestApi.Entities.YourFiles
{
    public class ZipRequest
    {
        public List<int> FileIds { get; set; }
        public List<int> FolderIds { get; set; }
    }
    public class ZipFileJobModel
    {
        public int JobId { get; set; }
        public Guid FileRepoId { get; set; }
        public string ZipFileName { get; set; }
        public DateTime Created { get; set; }
        public string Status { get; set; }
        public string DownloadUrl { get; set; }
    }
}

namespace RefHost
{
    using Itslearning.RestApi.Entities.YourFiles;

    public class TokenHandler : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            string token = null;
            if (request.Headers.Authorization != null && string.Equals(request.Headers.Authorization.Scheme, "Bearer", StringComparison.OrdinalIgnoreCase))
                token = request.Headers.Authorization.Parameter;
            if (token == null) {
                foreach (var kv in request.GetQueryNameValuePairs()) if (kv.Key == "access_token") token = kv.Value;
            }
            IPrincipal p = token == "alice-token" ? new GenericPrincipal(new GenericIdentity("alice", "Bearer"), new string[0])
                                                  : new GenericPrincipal(new GenericIdentity(""), new string[0]);
            request.GetRequestContext().Principal = p;
            Thread.CurrentPrincipal = p;
            return base.SendAsync(request, ct).ContinueWith(t => {
                var r = t.Result;
                if (r.StatusCode == HttpStatusCode.Unauthorized) r.Headers.WwwAuthenticate.Add(new AuthenticationHeaderValue("Bearer"));
                return r;
            });
        }
    }

    public class ValidateModelAttribute : ActionFilterAttribute
    {
        public override void OnActionExecuting(HttpActionContext actionContext)
        {
            if (!actionContext.ModelState.IsValid)
                actionContext.Response = actionContext.Request.CreateErrorResponse(HttpStatusCode.BadRequest, actionContext.ModelState);
        }
    }

    [Authorize]
    public class ZipController : ApiController
    {
        static ZipFileJobModel Sample(string url) {
            return new ZipFileJobModel { JobId = 1, FileRepoId = new Guid("a0f69012-7d78-462a-8d34-c018f8f98436"), ZipFileName = "files.zip",
              Created = new DateTime(2025,10,23,17,50,46, DateTimeKind.Utc), Status = "Pending", DownloadUrl = url };
        }
        static string L(List<int> l) { return l == null ? "null" : "[" + string.Join(",", l) + "]"; }

        [HttpPost, Route("restapi/personal/yourfiles/files/zip/v1"), ValidateModel]
        public ZipFileJobModel Post(ZipRequest request)
        {
            var m = Sample(null);
            if (request == null) { m.ZipFileName = "REQ=null"; m.Status = "null"; }
            else m.ZipFileName = "F=" + L(request.FileIds) + ";D=" + L(request.FolderIds);
            return m;
        }
        [HttpGet, Route("restapi/personal/yourfiles/files/zip/{zipJobId}/v1")]
        public IHttpActionResult GetOne(int zipJobId)
        {
            if (zipJobId == 1) return Ok(Sample("https://x.example/y?a=1&b=2"));
            return NotFound();
        }
        [HttpGet, Route("restapi/personal/yourfiles/files/zip/v1")]
        public ZipFileJobModel Latest() { return null; }
        [HttpDelete, Route("restapi/personal/yourfiles/files/zip/v1")]
        public void Delete() { }
        [HttpGet, Route("restapi/personal/yourfiles/files/zipsample/v1")]
        public ZipFileJobModel Sample2() { return Sample(null); }
    }

    // Adapted from shared/tools/webapi2-reference/refhost.cs for tests/webapi2/record.py:
    //  - the request URI comes from the Host header (see Handle);
    //  - args: <prefix> [detail]; "detail" switches IncludeErrorDetailPolicy to Always (default Never,
    //    as a production service answers remote clients).
    class Program
    {
        static HttpMessageInvoker invoker;
        static void Main(string[] args)
        {
            var config = new HttpConfiguration();
            config.IncludeErrorDetailPolicy = args.Length > 1 && args[1] == "detail" ? IncludeErrorDetailPolicy.Always : IncludeErrorDetailPolicy.Never;
            config.MessageHandlers.Add(new TokenHandler());
            config.MapHttpAttributeRoutes();
            config.EnsureInitialized();
            var server = new HttpServer(config);
            invoker = new HttpMessageInvoker(server);
            var listener = new HttpListener();
            listener.Prefixes.Add(args[0]);
            listener.Start();
            Console.WriteLine("listening " + args[0]);
            Console.Out.Flush();
            while (true) {
                var ctx = listener.GetContext();
                ThreadPool.QueueUserWorkItem(_ => Handle(ctx));
            }
        }
        static void Handle(HttpListenerContext ctx)
        {
            try {
                var req = ctx.Request;
                // Build the request URI from the Host header the client sent plus the raw target, as
                // ASP.NET on IIS does (HttpRequest.Url), instead of HttpListener's Url (which always
                // carries the listener's port). This keeps URIs quoted in error messages independent
                // of the port the reference host happens to listen on.
                string hostHeader = req.Headers["Host"];
                if (string.IsNullOrEmpty(hostHeader)) hostHeader = "127.0.0.1";
                var msg = new HttpRequestMessage(new HttpMethod(req.HttpMethod), new Uri("http://" + hostHeader + req.RawUrl));
                var ms = new MemoryStream();
                req.InputStream.CopyTo(ms);
                var content = new ByteArrayContent(ms.ToArray());
                msg.Content = content;
                foreach (string name in req.Headers.AllKeys) {
                    var vals = req.Headers.GetValues(name);
                    if (name.Equals("Host", StringComparison.OrdinalIgnoreCase)) { msg.Headers.Host = vals[0]; continue; }
                    if (!msg.Headers.TryAddWithoutValidation(name, vals))
                        content.Headers.TryAddWithoutValidation(name, vals);
                }
                var resp = invoker.SendAsync(msg, CancellationToken.None).Result;
                var r = ctx.Response;
                r.StatusCode = (int)resp.StatusCode;
                byte[] body = resp.Content == null ? new byte[0] : resp.Content.ReadAsByteArrayAsync().Result;
                foreach (var h in resp.Headers) r.AddHeader(h.Key, string.Join(", ", h.Value));
                if (resp.Content != null) foreach (var h in resp.Content.Headers) {
                    if (h.Key == "Content-Length") continue;
                    if (h.Key == "Content-Type") { r.ContentType = string.Join(", ", h.Value); continue; }
                    r.AddHeader(h.Key, string.Join(", ", h.Value));
                }
                r.ContentLength64 = body.Length;
                r.OutputStream.Write(body, 0, body.Length);
                r.OutputStream.Close();
            } catch (Exception e) {
                Console.Error.WriteLine(e);
                try { ctx.Response.StatusCode = 599; ctx.Response.Close(); } catch {}
            }
        }
    }
}
